// Terminal text -> styled runs. SGR (colours, bold, dim, italic, underline, inverse) becomes styles;
// every other escape sequence is dropped; `\r` returns to the line's start and later text overwrites
// (a progress bar shows its last state); `ESC[K` erases to the end. The result is text nodes and
// spans: log text is never parsed as HTML.

const PLAIN = Object.freeze({});

function cube(n) {
  if (n < 232) {
    const i = n - 16;
    const level = (v) => (v === 0 ? 0 : 55 + v * 40);
    return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
  }
  const gray = 8 + (n - 232) * 10;
  return `rgb(${gray}, ${gray}, ${gray})`;
}

// A colour after 38/48: `5;n` or `2;r;g;b`. Returns [colour, parameters used].
function extended(params, at) {
  if (params[at] === 5 && params.length > at + 1) {
    const n = params[at + 1];
    return [n < 16 ? n : cube(n), 2];
  }
  if (params[at] === 2 && params.length > at + 3) {
    const [r, g, b] = params.slice(at + 1, at + 4).map((v) => Math.min(255, v));
    return [`rgb(${r}, ${g}, ${b})`, 4];
  }
  return [undefined, params.length - at];
}

export function sgr(text, style) {
  const params = text === "" ? [0] : text.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  let next = { ...style };
  for (let i = 0; i < params.length; i++) {
    const p = params[i];
    if (p === 0) next = {};
    else if (p === 1) next.bold = true;
    else if (p === 2) next.dim = true;
    else if (p === 3) next.italic = true;
    else if (p === 4) next.underline = true;
    else if (p === 7) next.inverse = true;
    else if (p === 22) next.bold = next.dim = undefined;
    else if (p === 23) next.italic = undefined;
    else if (p === 24) next.underline = undefined;
    else if (p === 27) next.inverse = undefined;
    else if (p >= 30 && p <= 37) next.fg = p - 30;
    else if (p >= 90 && p <= 97) next.fg = p - 90 + 8;
    else if (p >= 40 && p <= 47) next.bg = p - 40;
    else if (p >= 100 && p <= 107) next.bg = p - 100 + 8;
    else if (p === 39) next.fg = undefined;
    else if (p === 49) next.bg = undefined;
    else if (p === 38 || p === 48) {
      const [colour, used] = extended(params, i + 1);
      next[p === 38 ? "fg" : "bg"] = colour;
      i += used;
    }
  }
  return Object.values(next).some((v) => v !== undefined) ? Object.freeze(next) : PLAIN;
}

function stringEnd(text, at) {
  // OSC, DCS, SOS, PM, APC: up to BEL or ST (ESC \)
  for (let j = at; j < text.length; j++) {
    if (text[j] === "\x07") return j + 1;
    if (text[j] === "\x1b" && text[j + 1] === "\\") return j + 2;
  }
  return text.length;
}

// The line as cells [{ch, style}], after escapes and carriage returns took effect.
export function cells(text) {
  const out = [];
  let col = 0;
  let style = PLAIN;
  let i = 0;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    if (code === 0x1b) {
      const kind = text[i + 1];
      if (kind === "[") {
        let j = i + 2;
        while (j < text.length && text.charCodeAt(j) >= 0x30 && text.charCodeAt(j) <= 0x3f) j++;
        const params = text.slice(i + 2, j);
        while (j < text.length && text.charCodeAt(j) >= 0x20 && text.charCodeAt(j) <= 0x2f) j++;
        const final = text[j];
        if (final === "m" && /^[\d;:]*$/.test(params)) style = sgr(params, style);
        else if (final === "K" && (params === "" || params === "0")) out.length = Math.min(out.length, col);
        else if (final === "K" && params === "2") out.length = 0;
        i = j + 1;
      } else if ("]PX^_".includes(kind)) {
        i = stringEnd(text, i + 2);
      } else {
        // ESC, intermediates (0x20-0x2f, e.g. the charset designations `ESC ( B`), one final byte
        let j = i + 1;
        while (j < text.length && text.charCodeAt(j) >= 0x20 && text.charCodeAt(j) <= 0x2f) j++;
        i = Math.min(text.length, j + 1);
      }
      continue;
    }
    if (code === 0x0d) {
      col = 0;
      i++;
      continue;
    }
    if (code === 0x08) {
      col = Math.max(0, col - 1);
      i++;
      continue;
    }
    if ((code < 0x20 && code !== 0x09) || code === 0x7f || (code >= 0x80 && code < 0xa0)) {
      i++;
      continue;
    }
    const ch = code >= 0xd800 && code < 0xdc00 ? text.slice(i, i + 2) : text[i];
    while (out.length < col) out.push({ ch: " ", style: PLAIN });
    out[col] = { ch, style };
    col++;
    i += ch.length;
  }
  return out;
}

export function plainText(text) {
  if (!/[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(text)) return text;
  return cells(text)
    .map((cell) => cell.ch)
    .join("");
}

function classesOf(style, marked) {
  const names = [];
  let fg = style.fg;
  let bg = style.bg;
  if (style.inverse) {
    [fg, bg] = [bg, fg];
    if (fg === undefined) names.push("ansi-inverse-fg");
    if (bg === undefined) names.push("ansi-inverse-bg");
  }
  if (typeof fg === "number") names.push(`ansi-fg-${fg}`);
  if (typeof bg === "number") names.push(`ansi-bg-${bg}`);
  if (style.bold) names.push("ansi-bold");
  if (style.dim) names.push("ansi-dim");
  if (style.italic) names.push("ansi-italic");
  if (style.underline) names.push("ansi-underline");
  if (marked) names.push("match");
  return { names, fg: typeof fg === "string" ? fg : "", bg: typeof bg === "string" ? bg : "" };
}

// Renders `text` into `element` as text nodes and spans; characters inside `marks` ([start, end)
// ranges over the plain text) are highlighted as search matches.
export function renderInto(element, text, pattern) {
  const hasEscapes = /[\x00-\x08\x0b-\x1f\x7f-\x9f]/.test(text);
  if (!hasEscapes && !pattern) {
    element.textContent = text;
    return;
  }
  const line = hasEscapes ? cells(text) : Array.from(text, (ch) => ({ ch, style: PLAIN }));
  const plain = line.map((cell) => cell.ch).join("");
  const marked = new Uint8Array(plain.length);
  if (pattern) {
    pattern.lastIndex = 0;
    for (let m = pattern.exec(plain); m; m = pattern.exec(plain)) {
      if (m[0] === "") {
        pattern.lastIndex++;
        continue;
      }
      marked.fill(1, m.index, m.index + m[0].length);
    }
  }
  // `plain` counts UTF-16 units; cells may hold a surrogate pair (two units)
  let unit = 0;
  let run = "";
  let runStyle = null;
  let runMark = 0;
  const flush = () => {
    if (!run) return;
    const { names, fg, bg } = classesOf(runStyle, runMark);
    if (!names.length && !fg && !bg) element.append(document.createTextNode(run));
    else {
      const span = document.createElement("span");
      if (names.length) span.className = names.join(" ");
      if (fg) span.style.color = fg;
      if (bg) span.style.backgroundColor = bg;
      span.textContent = run;
      element.append(span);
    }
    run = "";
  };
  element.textContent = "";
  for (const cell of line) {
    const mark = marked[unit];
    if (cell.style !== runStyle || mark !== runMark) {
      flush();
      runStyle = cell.style;
      runMark = mark;
    }
    run += cell.ch;
    unit += cell.ch.length;
  }
  flush();
}
