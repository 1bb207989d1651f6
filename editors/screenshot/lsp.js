// A minimal Language Server Protocol client over stdio, enough to drive
// `lpnc lsp` from a script: JSON-RPC framing (Content-Length headers),
// requests with replies, notifications, and the server's own requests
// (answered with `null`, as a client that supports nothing more would).
'use strict';

const { spawn } = require('child_process');

class LspClient {
  constructor(command, args, { cwd, log } = {}) {
    this.child = spawn(command, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    this.buffer = Buffer.alloc(0);
    this.nextId = 1;
    this.pending = new Map();
    this.listeners = [];
    this.stderr = '';
    this.log = log || (() => {});
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
    this.child.stdout.on('data', (chunk) => this.receive(chunk));
    this.child.stderr.on('data', (chunk) => {
      this.stderr += chunk.toString();
    });
    this.child.on('error', (err) => {
      for (const { reject } of this.pending.values()) reject(err);
      this.pending.clear();
    });
  }

  send(message) {
    const body = Buffer.from(JSON.stringify({ jsonrpc: '2.0', ...message }), 'utf8');
    this.log('->', message);
    this.child.stdin.write(`Content-Length: ${body.length}\r\n\r\n`);
    this.child.stdin.write(body);
  }

  receive(chunk) {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const headerEnd = this.buffer.indexOf('\r\n\r\n');
      if (headerEnd < 0) return;
      const header = this.buffer.slice(0, headerEnd).toString('ascii');
      const match = /Content-Length:\s*(\d+)/i.exec(header);
      if (!match) throw new Error(`no Content-Length in a header from the server: ${header}`);
      const length = Number(match[1]);
      const start = headerEnd + 4;
      if (this.buffer.length < start + length) return;
      const message = JSON.parse(this.buffer.slice(start, start + length).toString('utf8'));
      this.buffer = this.buffer.slice(start + length);
      this.dispatch(message);
    }
  }

  dispatch(message) {
    this.log('<-', message);
    if (message.id !== undefined && message.method) {
      // A request from the server (registerCapability, workDoneProgress/create, …).
      this.send({ id: message.id, result: null });
    } else if (message.id !== undefined) {
      const waiting = this.pending.get(message.id);
      if (!waiting) return;
      this.pending.delete(message.id);
      if (message.error) waiting.reject(new Error(`${message.error.code}: ${message.error.message}`));
      else waiting.resolve(message.result);
    } else {
      for (const listener of this.listeners) listener(message);
    }
  }

  request(method, params, timeoutMs = 10000) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`no reply to ${method} within ${timeoutMs} ms; server stderr:\n${this.stderr}`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this.send({ id, method, params });
    });
  }

  notify(method, params) {
    this.send({ method, params });
  }

  // The first notification `method` for which `accept(params)` holds.
  waitFor(method, accept, timeoutMs = 10000) {
    return new Promise((resolve, reject) => {
      const listener = (message) => {
        if (message.method === method && accept(message.params)) {
          clearTimeout(timer);
          this.listeners = this.listeners.filter((l) => l !== listener);
          resolve(message.params);
        }
      };
      const timer = setTimeout(() => {
        this.listeners = this.listeners.filter((l) => l !== listener);
        reject(new Error(`no ${method} within ${timeoutMs} ms; server stderr:\n${this.stderr}`));
      }, timeoutMs);
      this.listeners.push(listener);
    });
  }

  async shutdown() {
    try {
      await this.request('shutdown', null, 5000);
      this.notify('exit', null);
    } finally {
      this.child.stdin.end();
    }
    const timer = setTimeout(() => this.child.kill(), 5000);
    const status = await this.exited;
    clearTimeout(timer);
    return status;
  }
}

module.exports = { LspClient };
