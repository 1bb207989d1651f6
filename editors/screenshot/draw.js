// Draws an editor-like SVG (VS Code's Dark+ colours) from tokenized lines,
// LSP diagnostics and a hover reply. Monospace throughout, so every column
// is placed by arithmetic: x = gutter + column × character width.
'use strict';

const FONT = "'DejaVu Sans Mono', monospace";
const SIZE = 14;
const CW = SIZE * 0.6021; // DejaVu Sans Mono's advance, in em
const LH = 20;
const GUTTER = 56;
const TAB_H = 34;
const PAD = 12;

const BG = '#1e1e1e';
const FG = '#d4d4d4';

// Scope prefixes and their colours; the longest prefix matching the
// innermost scope that has one wins.
const THEME = [
  ['comment', '#6a9955'],
  ['keyword.control', '#c586c0'],
  ['keyword.other', '#569cd6'],
  ['keyword.operator', FG],
  ['entity.name.type', '#4ec9b0'],
  ['entity.name.section', '#4ec9b0'],
  ['entity.name.function', '#dcdcaa'],
  ['entity.name.function.decorator', '#4ec9b0'],
  ['punctuation.definition.annotation', '#4ec9b0'],
  ['support.function', '#dcdcaa'],
  ['variable.parameter', '#9cdcfe'],
  ['variable.other.property', '#9cdcfe'],
  ['variable.other.layer', '#9cdcfe'],
  ['variable.other', FG],
  ['variable.function', '#dcdcaa'],
  ['constant.numeric', '#b5cea8'],
  ['constant.language', '#569cd6'],
  ['constant.character.escape', '#d7ba7d'],
  ['string', '#ce9178'],
  ['invalid', '#f44747'],
  ['punctuation', FG],
  ['punctuation.definition.comment', '#6a9955'],
  ['punctuation.definition.string', '#ce9178'],
];

function colorFor(scopes) {
  for (let i = scopes.length - 1; i >= 0; i--) {
    const scope = scopes[i];
    let best = null;
    for (const [prefix, color] of THEME) {
      if ((scope === prefix || scope.startsWith(`${prefix}.`)) && (!best || prefix.length > best[0].length)) {
        best = [prefix, color];
      }
    }
    if (best) return best[1];
  }
  return FG;
}

function esc(text) {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function x(column) {
  return GUTTER + column * CW;
}

function codeLines(lines, firstLine, top) {
  const out = [];
  lines.slice(firstLine - 1).forEach(({ line, tokens }, i) => {
    const y = top + i * LH + LH * 0.72;
    out.push(`<text x="${GUTTER - 16}" y="${y}" fill="#858585" text-anchor="end">${firstLine + i}</text>`);
    const spans = tokens
      .filter((t) => line.slice(t.startIndex, t.endIndex).trim())
      .map((t) => {
        const text = line.slice(t.startIndex, t.endIndex);
        const lead = text.length - text.trimStart().length;
        const italic = t.scopes.some((s) => s.startsWith('comment')) ? ' font-style="italic"' : '';
        return `<tspan x="${x(t.startIndex + lead).toFixed(1)}" fill="${colorFor(t.scopes)}"${italic}>${esc(text.trim())}</tspan>`;
      });
    if (spans.length) out.push(`<text y="${y}" xml:space="preserve">${spans.join('')}</text>`);
  });
  return out.join('\n');
}

const SEVERITY = {
  1: { color: '#f14c4c', name: 'error' },
  2: { color: '#cca700', name: 'warning' },
  3: { color: '#3794ff', name: 'info' },
  4: { color: '#3794ff', name: 'hint' },
};

function squiggle(diagnostic, lines, firstLine, top) {
  const { start, end } = diagnostic.range;
  const color = (SEVERITY[diagnostic.severity] || SEVERITY[1]).color;
  const out = [];
  for (let line = start.line; line <= end.line; line++) {
    if (line < firstLine - 1 || line >= lines.length) continue;
    const from = line === start.line ? start.character : 0;
    const to = Math.max(line === end.line ? end.character : lines[line].line.length, from + 1);
    const y = top + (line - firstLine + 1) * LH + LH - 3;
    let d = `M${x(from).toFixed(1)},${y}`;
    for (let px = x(from), up = true; px < x(to); px += 2, up = !up) d += ` L${(px + 2).toFixed(1)},${up ? y - 2 : y}`;
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.2"/>`);
  }
  return out.join('\n');
}

// Markdown as the hover shows it: paragraphs, `- ` items, ``` blocks, `---`
// rules; inline **bold**, `code` and _italic_. Returns lines of styled words.
function markdownLines(markdown, width) {
  const lines = [];
  let fenced = false;
  for (const raw of markdown.split('\n')) {
    if (raw.trim().startsWith('```')) {
      fenced = !fenced;
      continue;
    }
    if (fenced) lines.push({ kind: 'code', words: [{ text: raw, style: 'code' }] });
    else if (raw.trim() === '---') lines.push({ kind: 'rule', words: [] });
    else if (!raw.trim()) lines.push({ kind: 'blank', words: [] });
    else {
      const item = /^(\s*)- /.exec(raw);
      const indent = item ? item[1].length + 2 : 0;
      lines.push(...wrap(inline(raw.replace(/^(\s*)- /, '$1• ')), width, indent));
    }
  }
  while (lines.length && lines[lines.length - 1].kind === 'blank') lines.pop();
  return lines;
}

function inline(text) {
  const parts = [];
  const re = /\*\*([^*]+)\*\*|`([^`]+)`|(?<![A-Za-z0-9])_([^_]+)_(?![A-Za-z0-9])/g;
  let last = 0;
  for (let m; (m = re.exec(text)); last = re.lastIndex) {
    if (m.index > last) parts.push({ text: text.slice(last, m.index), style: 'plain' });
    if (m[1] !== undefined) parts.push({ text: m[1], style: 'bold' });
    else if (m[2] !== undefined) parts.push({ text: m[2], style: 'code' });
    else parts.push({ text: m[3], style: 'italic' });
  }
  if (last < text.length) parts.push({ text: text.slice(last), style: 'plain' });
  return parts;
}

// Greedy wrapping at spaces, keeping each piece's style; lines after the
// first start `indent` columns in (under a list item's text).
function wrap(parts, width, indent) {
  const lines = [{ kind: 'text', words: [], length: 0 }];
  for (const part of parts) {
    for (const word of part.text.split(/(?<= )/)) {
      let line = lines[lines.length - 1];
      if (line.length + word.trimEnd().length > width && line.length > 0) {
        line = { kind: 'text', words: [{ text: ' '.repeat(indent), style: 'plain' }], length: indent };
        lines.push(line);
      }
      line.words.push({ text: word, style: part.style });
      line.length += word.length;
    }
  }
  return lines;
}

function styledLine(words, left, y) {
  let column = 0;
  const spans = words.map((w) => {
    const attrs = {
      bold: ' font-weight="bold" fill="#e8e8e8"',
      code: ' fill="#d7ba7d"',
      italic: ' font-style="italic" fill="#a0a0a0"',
      plain: ` fill="#cccccc"`,
    }[w.style];
    const span = `<tspan x="${(left + column * CW).toFixed(1)}"${attrs}>${esc(w.text)}</tspan>`;
    column += w.text.length;
    return span;
  });
  return `<text y="${y}" xml:space="preserve">${spans.join('')}</text>`;
}

// The hovered word's background, drawn under the code as the editor does.
function hoverHighlight(hover, firstLine, top) {
  if (!hover.range || hover.range.start.line !== hover.range.end.line) return '';
  const { start, end } = hover.range;
  const rowTop = top + (start.line - firstLine + 1) * LH;
  const width = ((end.character - start.character) * CW).toFixed(1);
  return `<rect x="${x(start.character).toFixed(1)}" y="${rowTop}" width="${width}" height="${LH}" fill="#264f78"/>`;
}

function hoverBox(hover, firstLine, top, canvasWidth) {
  const width = 70;
  const lines = markdownLines(hover.markdown, width);
  const cols = Math.max(...lines.map((l) => l.words.reduce((n, w) => n + w.text.length, 0)), 20);
  const boxW = Math.min(cols, width) * CW + 2 * PAD;
  const boxH = lines.reduce((h, l) => h + (l.kind === 'blank' ? LH / 2 : l.kind === 'rule' ? LH / 2 : LH), 0) + 2 * PAD - 4;
  const anchor = hover.range ? hover.range.start : hover.position;
  const left = Math.max(8, Math.min(x(anchor.character), canvasWidth - boxW - 8));
  const y0 = top + (anchor.line - firstLine + 2) * LH + 2;
  const out = [
    `<rect x="${left}" y="${y0}" width="${boxW.toFixed(1)}" height="${boxH}" rx="3" fill="#252526" stroke="#454545"/>`,
  ];
  let y = y0 + PAD;
  for (const line of lines) {
    if (line.kind === 'blank') {
      y += LH / 2;
    } else if (line.kind === 'rule') {
      out.push(`<line x1="${left + 6}" x2="${left + boxW - 6}" y1="${y + LH / 4}" y2="${y + LH / 4}" stroke="#454545"/>`);
      y += LH / 2;
    } else {
      out.push(styledLine(line.words, left + PAD, y + LH * 0.68));
      y += LH;
    }
  }
  return out.join('\n');
}

// The rows of the Problems panel: per diagnostic, its first line with code
// and position, then its other lines (the help) indented and dimmer.
function problemRows(diagnostics, maxCols) {
  const fit = (text) => (text.length > maxCols ? `${text.slice(0, maxCols - 1)}…` : text);
  const rows = [];
  for (const d of diagnostics) {
    const [first, ...rest] = d.message.split('\n');
    const code = d.code !== undefined ? `  ${d.source || 'lpn'}(${d.code})` : '';
    const where = `  [Ln ${d.range.start.line + 1}, Col ${d.range.start.character + 1}]`;
    rows.push({ severity: SEVERITY[d.severity] || SEVERITY[1], text: fit(`${first}${code}${where}`) });
    for (const line of rest.filter((l) => l.trim())) rows.push({ severity: null, text: fit(`  ${line}`) });
  }
  return rows;
}

function problemsPanelHeight(diagnostics) {
  return (problemRows(diagnostics, 1000).length + 1) * LH + 2 * PAD;
}

function problemsPanel(diagnostics, top, width) {
  const rows = problemRows(diagnostics, Math.floor((width - 2 * PAD - 40) / CW));
  const out = [
    `<rect x="0" y="${top}" width="${width}" height="${problemsPanelHeight(diagnostics)}" fill="${BG}"/>`,
    `<line x1="0" x2="${width}" y1="${top}" y2="${top}" stroke="#414141"/>`,
    `<text x="${PAD}" y="${top + PAD + LH * 0.7}" fill="#e7e7e7" font-size="12">PROBLEMS  ${diagnostics.length}</text>`,
  ];
  rows.forEach((row, i) => {
    const y = top + PAD + (i + 1) * LH + LH * 0.7;
    if (row.severity) {
      out.push(`<circle cx="${PAD + 8}" cy="${y - 4}" r="6" fill="none" stroke="${row.severity.color}" stroke-width="1.6"/>`);
    }
    const fill = row.severity ? '#cccccc' : '#9d9d9d';
    out.push(`<text x="${PAD + 24}" y="${y}" fill="${fill}" xml:space="preserve">${esc(row.text)}</text>`);
  });
  return out.join('\n');
}

function drawEditor({ title, lines, firstLine, diagnostics, hover }) {
  const shown = lines.slice(firstLine - 1);
  while (shown.length && !shown[shown.length - 1].line.trim()) shown.pop();
  const longest = Math.max(...shown.map((l) => l.line.length));
  const width = Math.ceil(x(Math.max(longest, 92)) + PAD);
  const codeTop = TAB_H + 8;
  const panelTop = codeTop + shown.length * LH + 12;
  const height = panelTop + problemsPanelHeight(diagnostics);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="${FONT}" font-size="${SIZE}">`,
    `<rect width="${width}" height="${height}" fill="${BG}"/>`,
    `<rect width="${width}" height="${TAB_H}" fill="#252526"/>`,
    `<rect width="${Math.ceil((title.length + 4) * CW)}" height="${TAB_H}" fill="${BG}"/>`,
    `<text x="${PAD}" y="${TAB_H * 0.64}" fill="#ffffff" font-size="13">${esc(title)}</text>`,
    hoverHighlight(hover, firstLine, codeTop),
    codeLines(lines.slice(0, firstLine - 1 + shown.length), firstLine, codeTop),
    ...diagnostics.map((d) => squiggle(d, lines, firstLine, codeTop)),
    problemsPanel(diagnostics, panelTop, width),
    hoverBox(hover, firstLine, codeTop, width),
    '</svg>',
  ];
  return `${parts.join('\n')}\n`;
}

module.exports = { drawEditor, colorFor, markdownLines };
