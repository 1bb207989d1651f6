// The VS Code side of lpn: starts `lpnc lsp` (a language server over stdio)
// for .lpn files. Highlighting comes from syntaxes/lpn.tmLanguage.json and
// needs no server; everything else (diagnostics, hover, completion, go to
// definition, formatting, code actions) is the server's.
'use strict';

const vscode = require('vscode');
const { LanguageClient, TransportKind } = require('vscode-languageclient/node');

let client = null;

function serverPath() {
  const configured = vscode.workspace.getConfiguration('lpn').get('serverPath');
  return typeof configured === 'string' && configured.trim() ? configured.trim() : 'lpnc';
}

function createClient() {
  const command = serverPath();
  const serverOptions = {
    run: { command, args: ['lsp'], transport: TransportKind.stdio },
    debug: { command, args: ['lsp'], transport: TransportKind.stdio },
  };
  const clientOptions = {
    documentSelector: [
      { scheme: 'file', language: 'lpn' },
      { scheme: 'untitled', language: 'lpn' },
    ],
    // Data files (CSV, safetensors) named by a .lpn file change what the
    // server reports: tell it when they change on disk.
    synchronize: {
      fileEvents: vscode.workspace.createFileSystemWatcher('**/*.{lpn,csv,safetensors}'),
    },
  };
  return new LanguageClient('lpn', 'lpn', serverOptions, clientOptions);
}

async function start() {
  client = createClient();
  try {
    await client.start();
  } catch (err) {
    const message =
      `lpn: could not start \`${serverPath()} lsp\` (${err && err.message ? err.message : err}). ` +
      'Install lpnc (`cargo install --path .` in the lpn repository) or set `lpn.serverPath` to its full path.';
    vscode.window.showErrorMessage(message, 'Open settings').then((choice) => {
      if (choice === 'Open settings') {
        vscode.commands.executeCommand('workbench.action.openSettings', 'lpn.serverPath');
      }
    });
  }
}

async function stop() {
  if (!client) return;
  const running = client;
  client = null;
  try {
    await running.stop();
  } catch (_) {
    // A server that never started has nothing to stop.
  }
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand('lpn.restartServer', async () => {
      await stop();
      await start();
    }),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration('lpn.serverPath')) {
        await stop();
        await start();
      }
    })
  );
  await start();
}

function deactivate() {
  return stop();
}

module.exports = { activate, deactivate };
