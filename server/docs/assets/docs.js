// Renders /api/openapi.json as a page: operations grouped by tag, with their
// parameters, request bodies and responses, then the schemas. Plain DOM code
// without a framework; text from the document only ever becomes text nodes
// (never HTML), so nothing in it can inject markup.
'use strict';

(function () {
  const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options'];
  // How many levels of referenced schemas an operation expands inline; the
  // Schemas section at the end has every schema in full.
  const INLINE_DEPTH = 2;

  let doc = null;

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Text with `code` spans and **bold**, split into paragraphs on blank lines.
  function prose(text, tag) {
    const wrapper = document.createDocumentFragment();
    for (const para of String(text || '').split(/\n\s*\n/)) {
      if (!para.trim()) continue;
      const p = el(tag || 'p');
      const parts = para.split(/(`[^`]*`|\*\*[^*]+\*\*)/);
      for (const part of parts) {
        if (part.startsWith('`') && part.endsWith('`') && part.length >= 2) {
          p.append(el('code', {}, part.slice(1, -1)));
        } else if (part.startsWith('**') && part.endsWith('**') && part.length >= 4) {
          p.append(el('strong', {}, part.slice(2, -2)));
        } else if (part) {
          p.append(part);
        }
      }
      wrapper.append(p);
    }
    return wrapper;
  }

  function refName(ref) {
    return ref.split('/').pop();
  }

  function resolve(ref) {
    // Only local references ("#/components/...") occur in our document.
    let node = doc;
    for (const part of ref.replace(/^#\//, '').split('/')) {
      node = node ? node[part] : undefined;
    }
    return node || {};
  }

  function deref(schema) {
    return schema && schema.$ref ? resolve(schema.$ref) : schema || {};
  }

  function schemaLink(ref) {
    const name = refName(ref);
    return el('a', { class: 'ref', href: '#schema-' + name }, name);
  }

  // A short inline description of a schema's type.
  function typeLabel(schema) {
    if (!schema) return el('span', { class: 'type' }, 'any');
    if (schema.$ref) return schemaLink(schema.$ref);
    if (schema.allOf) {
      const span = el('span', { class: 'type' });
      schema.allOf.forEach((part, i) => {
        if (i > 0) span.append(' & ');
        span.append(part.$ref ? schemaLink(part.$ref) : 'object');
      });
      return span;
    }
    if (schema.type === 'array') {
      return el('span', { class: 'type' }, 'array of ', typeLabel(schema.items));
    }
    let text = schema.type || 'any';
    if (schema.format) text += ' (' + schema.format + ')';
    if (schema.nullable) text += ' | null';
    return el('span', { class: 'type' }, text);
  }

  function constraints(schema) {
    const s = deref(schema);
    const out = [];
    if (s.enum) out.push('one of: ' + s.enum.map((v) => JSON.stringify(v)).join(', '));
    if (s.minimum !== undefined || s.maximum !== undefined) {
      out.push('range ' + (s.minimum ?? '…') + '..' + (s.maximum ?? '…'));
    }
    if (s.minItems !== undefined) out.push('at least ' + s.minItems + ' item(s)');
    if (s.maxLength !== undefined) out.push('at most ' + s.maxLength + ' characters');
    if (s.pattern) out.push('pattern ' + s.pattern);
    if (s.default !== undefined) out.push('default ' + JSON.stringify(s.default));
    return out.length ? el('span', { class: 'enum' }, ' — ' + out.join('; ')) : null;
  }

  // Properties of an object schema, following $ref and allOf.
  function collect(schema, seen) {
    const s = deref(schema);
    const result = { props: [], required: new Set(), additional: false };
    const key = schema && schema.$ref;
    if (key) {
      if (seen.has(key)) return result;
      seen = new Set(seen).add(key);
    }
    for (const part of s.allOf || []) {
      const sub = collect(part, seen);
      result.props.push(...sub.props);
      sub.required.forEach((r) => result.required.add(r));
      result.additional = result.additional || sub.additional;
    }
    for (const [name, prop] of Object.entries(s.properties || {})) result.props.push([name, prop]);
    (s.required || []).forEach((r) => result.required.add(r));
    if (s.additionalProperties) result.additional = s.additionalProperties;
    return result;
  }

  // A nested list of the schema's fields, depth levels deep; null for scalars.
  function fields(schema, depth, seen) {
    const s = deref(schema);
    if (s.type === 'array' && s.items) return fields(s.items, depth, seen);
    const { props, required, additional } = collect(schema, seen || new Set());
    if (!props.length && !additional) return null;
    const list = el('ul');
    for (const [name, prop] of props) {
      const item = el('li', {},
        el('code', {}, name),
        required.has(name) ? el('span', { class: 'required' }, ' required') : null,
        ': ', typeLabel(prop), constraints(prop),
        prop.description ? el('span', { class: 'desc' }, ' — ', prose(prop.description, 'span')) : null,
        prop.deprecated ? el('span', { class: 'desc' }, ' (deprecated)') : null);
      if (depth > 0) {
        const nested = fields(prop, depth - 1, seen);
        if (nested) item.append(nested);
      }
      list.append(item);
    }
    if (additional) {
      list.append(el('li', {}, el('code', {}, '<any key>'), ': ',
        additional === true ? el('span', { class: 'type' }, 'any') : typeLabel(additional)));
    }
    return list;
  }

  function schemaBlock(schema, depth) {
    const block = el('div', { class: 'schema' }, typeLabel(schema), constraints(schema));
    const s = deref(schema);
    if (s.description && schema.$ref) block.append(el('div', { class: 'desc' }, prose(s.description, 'span')));
    const nested = fields(schema, depth);
    if (nested) block.append(nested);
    return block;
  }

  function parameterTable(params) {
    const table = el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'Name'), el('th', {}, 'In'), el('th', {}, 'Type'),
        el('th', {}, 'Description'))));
    const body = el('tbody');
    for (const raw of params) {
      const p = raw.$ref ? resolve(raw.$ref) : raw;
      body.append(el('tr', {},
        el('td', {}, el('code', { class: p.deprecated ? 'deprecated' : null }, p.name),
          p.required ? el('div', { class: 'required' }, 'required') : null),
        el('td', {}, p.in),
        el('td', {}, typeLabel(p.schema), constraints(p.schema)),
        el('td', {}, prose(p.description || '', 'div'), p.deprecated ? el('div', { class: 'desc' }, 'Deprecated.') : null)));
    }
    table.append(body);
    return table;
  }

  function contentBlocks(content) {
    const out = [];
    for (const [type, media] of Object.entries(content || {})) {
      out.push(el('div', { class: 'mono desc' }, type));
      if (media.schema) out.push(schemaBlock(media.schema, INLINE_DEPTH));
    }
    return out;
  }

  function responseTable(responses) {
    const table = el('table', {},
      el('thead', {}, el('tr', {}, el('th', {}, 'Status'), el('th', {}, 'Description'))));
    const body = el('tbody');
    for (const [status, raw] of Object.entries(responses || {})) {
      const r = raw.$ref ? resolve(raw.$ref) : raw;
      const cell = el('td', {}, prose(r.description || '', 'div'));
      const headers = Object.keys(r.headers || {});
      if (headers.length) cell.append(el('div', { class: 'desc' }, 'Headers: ', headers.join(', ')));
      cell.append(...contentBlocks(r.content));
      body.append(el('tr', {}, el('td', { class: 'status-code' }, status), cell));
    }
    table.append(body);
    return table;
  }

  function authBadge(op) {
    const security = op.security !== undefined ? op.security : doc.security || [];
    if (!security.length) return el('span', { class: 'badge public' }, 'public');
    const names = security.map((req) => Object.keys(req)[0] || 'none');
    if (names.includes('none')) return el('span', { class: 'badge' }, 'auth optional');
    if (names.includes('wsToken')) return el('span', { class: 'badge' }, 'token (handshake)');
    return el('span', { class: 'badge' }, 'bearer');
  }

  function renderOperation(method, path, op) {
    const undocumented = op['x-weft-status'] === 'undocumented';
    const label = method.toUpperCase() + ' ' + path;
    const details = el('details', {
      class: 'op' + (undocumented ? ' flagged' : ''),
      id: op.operationId || null,
      'data-op': label,
      'data-search': (label + ' ' + (op.summary || '') + ' ' + (op.description || '')).toLowerCase(),
    });
    details.append(el('summary', {},
      el('span', { class: 'method ' + method }, method.toUpperCase()),
      el('span', { class: 'path' }, path),
      el('span', { class: 'summary' }, op.summary || ''),
      undocumented ? el('span', { class: 'badge flagged' }, 'undocumented') : null,
      authBadge(op)));
    const body = el('div', { class: 'op-body' });
    if (op.description) body.append(prose(op.description));
    if (op.parameters && op.parameters.length) {
      body.append(el('h4', {}, 'Parameters'), parameterTable(op.parameters));
    }
    if (op.requestBody) {
      const rb = op.requestBody;
      body.append(el('h4', {}, 'Request body' + (rb.required ? '' : ' (optional)')));
      if (rb.description) body.append(prose(rb.description));
      body.append(...contentBlocks(rb.content));
    }
    body.append(el('h4', {}, 'Responses'), responseTable(op.responses));
    details.append(body);
    return details;
  }

  function render() {
    const main = document.getElementById('main');
    const nav = document.getElementById('nav');
    main.textContent = '';
    nav.textContent = '';

    document.getElementById('title').textContent = doc.info.title;
    document.getElementById('version').textContent = 'v' + doc.info.version + ' · OpenAPI ' + doc.openapi;
    document.title = doc.info.title + ' documentation';
    main.append(el('div', { class: 'intro' }, prose(doc.info.description)));

    // Group by the first tag, in the order of the document's tag list.
    const groups = new Map();
    for (const tag of doc.tags || []) groups.set(tag.name, { tag, ops: [] });
    for (const [path, item] of Object.entries(doc.paths || {})) {
      for (const method of METHODS) {
        const op = item[method];
        if (!op) continue;
        const name = (op.tags && op.tags[0]) || 'Other';
        if (!groups.has(name)) groups.set(name, { tag: { name }, ops: [] });
        groups.get(name).ops.push([method, path, op]);
      }
    }

    const navList = el('ul');
    let total = 0;
    for (const { tag, ops } of groups.values()) {
      if (!ops.length) continue;
      const id = 'tag-' + tag.name.toLowerCase().replace(/[^a-z0-9]+/g, '-');
      const section = el('section', { class: 'tag', id }, el('h2', {}, tag.name));
      if (tag.description) section.append(prose(tag.description));
      for (const [method, path, op] of ops) section.append(renderOperation(method, path, op));
      main.append(section);
      navList.append(el('li', {}, el('a', { href: '#' + id }, el('span', {}, tag.name),
        el('span', { class: 'count' }, String(ops.length)))));
      total += ops.length;
    }

    const schemas = (doc.components && doc.components.schemas) || {};
    const schemaSection = el('section', { class: 'tag schemas-section', id: 'schemas' },
      el('h2', {}, 'Schemas'));
    for (const [name, schema] of Object.entries(schemas)) {
      const block = el('details', { id: 'schema-' + name }, el('summary', {}, name));
      if (schema.description) block.append(prose(schema.description));
      block.append(schemaBlock(schema, 1));
      schemaSection.append(block);
    }
    main.append(schemaSection);
    navList.append(el('li', {}, el('a', { href: '#schemas' }, el('span', {}, 'Schemas'),
      el('span', { class: 'count' }, String(Object.keys(schemas).length)))));
    nav.append(navList);

    main.setAttribute('data-operations', String(total));
    main.setAttribute('data-state', 'ready');
  }

  function wireTools() {
    const filter = document.getElementById('filter');
    filter.addEventListener('input', () => {
      const q = filter.value.trim().toLowerCase();
      for (const op of document.querySelectorAll('details.op')) {
        op.classList.toggle('hidden', q !== '' && !op.dataset.search.includes(q));
      }
      for (const section of document.querySelectorAll('section.tag:not(.schemas-section)')) {
        const visible = section.querySelector('details.op:not(.hidden)');
        section.classList.toggle('hidden', !visible);
      }
    });
    document.getElementById('expand').addEventListener('click', () => {
      document.querySelectorAll('details.op').forEach((d) => { d.open = true; });
    });
    document.getElementById('collapse').addEventListener('click', () => {
      document.querySelectorAll('details.op').forEach((d) => { d.open = false; });
    });
  }

  async function load() {
    const main = document.getElementById('main');
    try {
      const response = await fetch('/api/openapi.json', { headers: { Accept: 'application/json' } });
      if (!response.ok) throw new Error('HTTP ' + response.status);
      doc = await response.json();
      render();
      wireTools();
      // Open and show the operation or schema named in the URL fragment, if
      // any: the browser looked for it before it existed.
      const target = location.hash && document.getElementById(location.hash.slice(1));
      if (target) {
        if (target.tagName === 'DETAILS') target.open = true;
        target.scrollIntoView();
      }
    } catch (err) {
      main.textContent = '';
      main.append(el('p', { class: 'status error' },
        'Could not load /api/openapi.json: ' + (err && err.message ? err.message : err)));
      main.setAttribute('data-state', 'error');
    }
  }

  load();
})();
