// Node.js `net` line echo (bench peer): every line comes back, one handler
// call per line, replies of one 'data' event leave together (cork/uncork).
//   node node_echo.js PORT
'use strict';
const net = require('net');
const port = Number(process.argv[2]);

function onMessage(sock, line) {
  sock.write(line + '\n');
}

net.createServer({ noDelay: true }, (sock) => {
  let tail = '';
  sock.setEncoding('latin1');
  sock.on('data', (data) => {
    const buf = tail.length ? tail + data : data;
    let start = 0;
    let i;
    sock.cork();
    while ((i = buf.indexOf('\n', start)) !== -1) {
      let end = i;
      if (end > start && buf.charCodeAt(end - 1) === 13) end--;
      onMessage(sock, buf.slice(start, end));
      start = i + 1;
    }
    sock.uncork();
    tail = start < buf.length ? buf.slice(start) : '';
  });
  sock.on('error', () => {});
}).listen({ port, host: '127.0.0.1', backlog: 4096 });
