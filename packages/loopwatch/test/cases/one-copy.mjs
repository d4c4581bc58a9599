// Resolved through the workspace symlink node_modules/loopwatch: must be the copy register loaded.
import { activeMode } from 'loopwatch';
console.log(activeMode());
