// The console's pages, one module per resource family. Each module calls
// register() from ../app.js when it is imported; app.js imports this file
// once, before it routes. Add a page by adding its import here.
