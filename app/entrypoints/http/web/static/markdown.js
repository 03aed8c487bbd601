/* A small, safe Markdown renderer for model output.
 *
 * It builds DOM nodes and puts every piece of text in with createTextNode /
 * textContent, never innerHTML: whatever the model writes (<script>, <img onerror>,
 * javascript: links) shows as text and can never become markup. It covers what chat
 * answers use: fenced code blocks (also while a fence is still open mid-stream),
 * headings, lists, block quotes, rules, paragraphs with line breaks, and inline
 * code, bold, italic and http(s) links.
 */
"use strict";

(function () {
  function element(tag, className) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    return node;
  }

  function safeHref(url) {
    if (!/^https?:\/\//i.test(url)) return null;
    try {
      const parsed = new URL(url);
      return parsed.protocol === "http:" || parsed.protocol === "https:" ? parsed.href : null;
    } catch (_) {
      return null;
    }
  }

  // Inline spans, earliest match first: `code`, [text](url), **bold**, __bold__, *italic*, _italic_.
  const INLINE = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)|\[([^\]\n]+)\]\(([^()\s]+)\)|\*\*(?=\S)([\s\S]+?)\*\*|__(?=\S)([\s\S]+?)__|\*(?=[^\s*])([^*\n]+?)\*|(?<![\w])_(?=[^\s_])([^_\n]+?)_(?![\w])/g;

  function renderInline(text, parent) {
    const pattern = new RegExp(INLINE.source, "g");
    let last = 0;
    let match;
    while ((match = pattern.exec(text)) !== null) {
      if (match.index > last) parent.appendChild(document.createTextNode(text.slice(last, match.index)));
      if (match[1]) {
        const code = element("code");
        code.textContent = match[2];
        parent.appendChild(code);
      } else if (match[3] !== undefined) {
        const href = safeHref(match[4]);
        if (href) {
          const link = element("a");
          link.href = href;
          link.rel = "noopener noreferrer nofollow";
          link.target = "_blank";
          renderInline(match[3], link);
          parent.appendChild(link);
        } else {
          parent.appendChild(document.createTextNode(match[0]));
        }
      } else if (match[5] !== undefined || match[6] !== undefined) {
        const strong = element("strong");
        renderInline(match[5] !== undefined ? match[5] : match[6], strong);
        parent.appendChild(strong);
      } else {
        const em = element("em");
        renderInline(match[7] !== undefined ? match[7] : match[8], em);
        parent.appendChild(em);
      }
      last = pattern.lastIndex;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function renderLines(lines, parent) {
    lines.forEach(function (line, index) {
      if (index > 0) parent.appendChild(element("br"));
      renderInline(line, parent);
    });
  }

  const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
  const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
  const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
  const QUOTE = /^ {0,3}> ?(.*)$/;
  const ITEM = /^( {0,3})([-*+]|\d{1,9}[.)])\s+(.*)$/;

  function startsBlock(line) {
    return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || ITEM.test(line);
  }

  function renderBlocks(lines, parent) {
    let i = 0;
    while (i < lines.length) {
      const line = lines[i];
      const fence = line.match(FENCE);
      if (fence) {
        const marker = fence[1];
        const body = [];
        i += 1;
        while (i < lines.length && !new RegExp("^ {0,3}" + marker[0] + "{" + marker.length + ",}\\s*$").test(lines[i])) {
          body.push(lines[i]);
          i += 1;
        }
        i += 1; // the closing fence (or past the end while it is still streaming)
        const pre = element("pre");
        const code = element("code");
        if (fence[2]) pre.dataset.lang = fence[2];
        code.textContent = body.join("\n");
        pre.appendChild(code);
        parent.appendChild(pre);
        continue;
      }
      if (/^\s*$/.test(line)) {
        i += 1;
        continue;
      }
      const heading = line.match(HEADING);
      if (heading) {
        const node = element("h" + Math.min(6, heading[1].length + 2));
        renderInline(heading[2], node);
        parent.appendChild(node);
        i += 1;
        continue;
      }
      if (RULE.test(line)) {
        parent.appendChild(element("hr"));
        i += 1;
        continue;
      }
      if (QUOTE.test(line)) {
        const inner = [];
        while (i < lines.length && QUOTE.test(lines[i])) {
          inner.push(lines[i].match(QUOTE)[1]);
          i += 1;
        }
        const quote = element("blockquote");
        renderBlocks(inner, quote);
        parent.appendChild(quote);
        continue;
      }
      const item = line.match(ITEM);
      if (item) {
        const ordered = /\d/.test(item[2][0]);
        const list = element(ordered ? "ol" : "ul");
        if (ordered && parseInt(item[2], 10) !== 1) list.start = parseInt(item[2], 10);
        while (i < lines.length) {
          const current = lines[i].match(ITEM);
          if (!current || /\d/.test(current[2][0]) !== ordered) break;
          const text = [current[3]];
          i += 1;
          // Continuation lines: indented, not blank, not a new item or block.
          while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !ITEM.test(lines[i])) {
            text.push(lines[i].trim());
            i += 1;
          }
          const li = element("li");
          renderLines(text, li);
          list.appendChild(li);
        }
        parent.appendChild(list);
        continue;
      }
      const paragraph = [];
      while (i < lines.length && !/^\s*$/.test(lines[i]) && (paragraph.length === 0 || !startsBlock(lines[i]))) {
        paragraph.push(lines[i]);
        i += 1;
      }
      const p = element("p");
      renderLines(paragraph, p);
      parent.appendChild(p);
    }
  }

  /** Markdown text to a DocumentFragment of safe nodes. */
  function render(markdown) {
    const fragment = document.createDocumentFragment();
    renderBlocks(String(markdown).replace(/\r\n?/g, "\n").split("\n"), fragment);
    return fragment;
  }

  window.SafeMarkdown = Object.freeze({ render: render });
})();
