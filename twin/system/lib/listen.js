"use strict";
/**
 * The twin host's small listeners (run by units with the node the twin mounts at /.twin/bin/node):
 *
 *   node listen.js http PORT STATUS     every TCP connection on PORT is accepted (a `tcp` check passes) and every
 *                                       HTTP request gets STATUS (an `http` check on the host, or a proxy's upstream)
 *   node listen.js relay PORT SOCKET    every TCP connection on PORT is relayed to the Unix socket SOCKET (the fake
 *                                       Authentik API, which runs in the twin's own process)
 *
 * Both listen on every IPv4 address of the host (as a service bound to its address or 0.0.0.0 is reached on its IP and
 * on loopback) and stop on SIGTERM.
 */
const http = require("node:http");
const net = require("node:net");

const [mode, portText, target] = process.argv.slice(2);
const port = Number(portText);
if (!Number.isInteger(port) || port < 1 || port > 65535 || (mode !== "http" && mode !== "relay") || !target) {
  process.stderr.write("usage: listen.js http PORT STATUS | relay PORT SOCKET\n");
  process.exit(2);
}

let server;
if (mode === "http") {
  const status = Number(target);
  server = http.createServer((request, response) => {
    response.writeHead(status, { "Content-Type": "text/plain" });
    response.end(`twin listener on port ${port}: ${request.method} ${request.url}\n`);
  });
} else {
  server = net.createServer((client) => {
    const upstream = net.connect(target);
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
}
server.listen({ port, host: "0.0.0.0" }, () => process.stdout.write(`listening on port ${port} (${mode})\n`));
server.on("error", (error) => {
  process.stderr.write(`listen.js: ${error.message}\n`);
  process.exit(1);
});
process.on("SIGTERM", () => process.exit(0));
