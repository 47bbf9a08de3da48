// Where require('mpthreads') and require('mpthreads/redis') land (the "require" condition of package.json's exports). The package is an ES
// module only; without this file Node 20 would throw ERR_REQUIRE_ESM naming a file deep in node_modules, which
// does not say what to do instead.
'use strict';

throw Object.assign(
  new Error(
    "mpthreads is ESM-only: require() cannot load 'mpthreads' or 'mpthreads/redis'. Use\n" +
      "  import { Process, Pipe, Queue } from 'mpthreads';\n" +
      "  import { connect } from 'mpthreads/redis';\n" +
      'in an ES module (a .mjs or .mts file, or "type": "module" in package.json), or from CommonJS\n' +
      "  const { Process, Pipe, Queue } = await import('mpthreads');\n" +
      'inside an async function.',
  ),
  { code: 'ERR_REQUIRE_ESM' },
);
