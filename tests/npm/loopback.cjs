// Preloaded into Node servers under test (NODE_OPTIONS=--require): every
// server the process starts listens on 127.0.0.1 only, whatever host the
// server itself asked for. Tests must never expose a port beyond loopback.
'use strict';
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  const first = args[0];
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) {
    // listen(port[, host][, backlog][, callback])
    if (typeof args[1] === 'string') {
      args[1] = '127.0.0.1';
    } else {
      args.splice(1, 0, '127.0.0.1');
    }
  } else if (first && typeof first === 'object' && !Array.isArray(first) && !first.path && !first.fd && !first.handle) {
    args[0] = { ...first, host: '127.0.0.1' };
  }
  return listen.apply(this, args);
};
