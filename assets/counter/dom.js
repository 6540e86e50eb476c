// Small DOM helpers of the counter page. Text from the agent is only ever set as
// textContent: a name or an upstream's message can never become markup.

export const $ = (id) => document.getElementById(id);

// An element with a class and its text.
export function el(tag, className, text) {
  const element = document.createElement(tag);
  if (className) element.className = className;
  if (text !== undefined && text !== null) element.textContent = text;
  return element;
}

// A button that does `action` when pressed (mouse or keyboard).
export function button(className, action) {
  const element = el('button', className);
  element.type = 'button';
  element.addEventListener('click', action);
  return element;
}

// The one polite live region (#announce): what changed, said once. Words that come close
// together are said together; the region is emptied first so the same words are said again.
let waiting = [];
let timer = null;

export function announce(words) {
  waiting.push(words);
  clearTimeout(timer);
  timer = setTimeout(() => {
    const region = $('announce');
    region.textContent = '';
    const text = waiting.join(' ');
    waiting = [];
    timer = setTimeout(() => { region.textContent = text; }, 50);
  }, 150);
}

// Nothing waiting may still be said (the card it was about has left).
export function silence() {
  waiting = [];
  clearTimeout(timer);
  $('announce').textContent = '';
}
