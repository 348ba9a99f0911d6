// The console's pages, one module per resource family. Each module calls
// register() from ../app.js when it is imported; app.js imports this file
// once, before it routes. Add a page by adding its import here.
//
// Routes match in the order they are registered: fixed routes such as
// instances/new come before instances/:name, so their modules come first.
import './instance-create.js';
import './instances.js';
import './groups.js';
import './loadbalancers.js';
import './stacks.js';
import './networking.js';
import './keypairs.js';
import './images.js';
import './flavors.js';
import './hosts.js';
import './admin.js';
