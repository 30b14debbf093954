// Registers every primitive op. Importing this module is what makes `opDef(name)` find them.
import './source.js';
import './unary.js';
import './binary.js';
import './select.js';
import './reduce.js';
import './matmul.js';
import './layout.js';
import './gather.js';
import './window.js';
