// SVG elements for the page's editors (zones, head marks).

const SVG = "http://www.w3.org/2000/svg";

export function element(name, attributes, parent) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  parent.append(node);
  return node;
}
