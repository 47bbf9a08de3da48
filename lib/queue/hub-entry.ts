// Registers the queue hub's worker entry point (see ../entries.ts); the runtime a hub worker imports.
import { registerEntry } from '../entries.ts';
import { main } from './hub.ts';

registerEntry('hub', main);
