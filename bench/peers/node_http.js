// Node.js `http` hello world (bench peer).
//   node node_http.js PORT
'use strict';
const http = require('http');
const port = Number(process.argv[2]);

const server = http.createServer((req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end('hello');
});
server.keepAliveTimeout = 60000;
server.listen({ port, host: '127.0.0.1', backlog: 4096 });
