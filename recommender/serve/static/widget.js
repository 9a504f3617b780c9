/* <related-stories>: recommender's related-stories block as a custom element. No dependencies, no build step.

   Embed it where the block goes (attributes: article-id, required; placement, k; api, default: where this
   script was loaded from; no-style, to leave out related.css):
     <related-stories article-id="ID" placement="article_bottom" k="5"></related-stories>
     <script src="https://YOUR-API/widget.js" defer></script>

   It fetches the list when it comes near the screen and renders the markup of /v1/articles/<id>/related.html
   with DOM calls only (no HTML parsing, no inline style: it runs under a strict Content-Security-Policy). Any
   failure renders nothing. When the answer carries a `rid`, it reports one impression (the block half seen)
   and the clicks to /v1/events. No cookies, no storage. */
(function () {
  "use strict";
  if (!window.customElements || customElements.get("related-stories")) return;
  var script = document.currentScript;
  // The API lives where this script came from: its folder, so an API behind a path prefix works too
  // (currentScript exists only while the script first runs).
  var scriptApi = script && script.src ? new URL(".", script.src).href : location.origin;
  var styled = false;

  // A web address (http or https), else null: a javascript: or data: address is never used.
  function web(value) {
    if (typeof value !== "string") return null;
    try {
      var protocol = new URL(value).protocol;
      return protocol === "http:" || protocol === "https:" ? value : null;
    } catch (e) {
      return null;
    }
  }

  function element(name, className, text) {
    var node = document.createElement(name);
    if (className) node.setAttribute("class", className);
    if (text) node.textContent = text;
    return node;
  }

  // What the block shows of a story, in the order of related_block.html.
  function story(item) {
    var href = web(item.url), image = item.image || {}, src = web(image.url), picture;
    var li = element("li", "rs-item rs-" + String(item.relation).replace(/[^\w-]/g, ""));
    var link = element(href ? "a" : "span", "rs-link");
    if (href) link.setAttribute("href", href);
    if (src) {
      picture = element("img", "rs-image");
      picture.setAttribute("src", src);
      picture.setAttribute("alt", String(image.alt || ""));
      if (image.width && image.height) {
        picture.setAttribute("width", String(image.width));
        picture.setAttribute("height", String(image.height));
      }
      picture.setAttribute("loading", "lazy");
      picture.setAttribute("decoding", "async");
    } else {
      picture = element("span", "rs-image rs-no-image");
      picture.setAttribute("aria-hidden", "true");
    }
    link.appendChild(picture);
    if (item.section) link.appendChild(element("span", "rs-section", String(item.section)));
    link.appendChild(element("span", "rs-title", String(item.title)));
    if (item.teaser) link.appendChild(element("span", "rs-teaser", String(item.teaser)));
    li.appendChild(link);
    return li;
  }

  // Beacons outlive the page (a click navigates away); text/plain needs no CORS preflight.
  function send(url, event) {
    var body = JSON.stringify({events: [event]});
    try {
      if (navigator.sendBeacon && navigator.sendBeacon(url, new Blob([body], {type: "text/plain"}))) return;
    } catch (e) { /* fall back to fetch */ }
    try {
      fetch(url, {method: "POST", body: body, headers: {"Content-Type": "text/plain"}, keepalive: true,
                  mode: "cors", credentials: "omit"}).catch(function () {});
    } catch (e) { /* events are optional */ }
  }

  // Half the block on screen, or half the screen filled by a block taller than two screens.
  function seen(entry) {
    var root = entry.rootBounds;
    return entry.isIntersecting && (entry.intersectionRatio >= 0.5 ||
                                    (root && entry.intersectionRect.height >= root.height / 2));
  }

  class RelatedStories extends HTMLElement {
    connectedCallback() {
      if (this.started) return;
      this.started = true;
      var self = this;
      if (!window.IntersectionObserver) return this.load();
      var near = new IntersectionObserver(function (entries) {
        if (entries.some(function (entry) { return entry.isIntersecting; })) {
          near.disconnect();
          self.load();
        }
      }, {rootMargin: "600px 0px"});
      near.observe(this);
    }

    async load() {
      try {
        var id = this.getAttribute("article-id");
        if (!id) return;
        var api = (this.getAttribute("api") || scriptApi).replace(/\/+$/, "");
        var query = new URLSearchParams();
        ["placement", "k"].forEach(function (name) {
          if (this.hasAttribute(name)) query.set(name, this.getAttribute(name));
        }, this);
        this.addCss(api);
        var answer = await fetch(api + "/v1/articles/" + encodeURIComponent(id) + "/related" +
                                 (String(query) ? "?" + query : ""), {credentials: "omit"});
        if (answer.ok) this.render(await answer.json(), api, id);
      } catch (e) { /* nothing to show: the page stays as it is */ }
    }

    // The block's stylesheet, once per page, unless the page links it itself or the element says no-style.
    addCss(api) {
      if (styled || this.hasAttribute("no-style") || document.querySelector('link[href*="related.css"]')) return;
      styled = true;
      var link = document.createElement("link");
      link.setAttribute("rel", "stylesheet");
      link.setAttribute("href", api + "/related.css");
      document.head.appendChild(link);
    }

    render(data, api, id) {
      var items = (data && Array.isArray(data.items) ? data.items : []).map(function (item) {
        return item && typeof item === "object" ? item : {};
      });
      if (!items.length) return;
      var block = element("section", "rs-block"), list = element("ol", "rs-list");
      block.setAttribute("lang", String(data.lang || "en"));
      block.setAttribute("aria-label", String(data.heading || ""));
      block.appendChild(element("h2", "rs-heading", String(data.heading || "")));
      items.forEach(function (item) { list.appendChild(story(item)); });
      block.appendChild(list);
      this.replaceChildren(block);
      if (typeof data.rid === "string") this.report(block, items, data, api, id);
    }

    // Reader events: one impression when the block is first half seen, one event per click on a story.
    report(block, items, data, api, id) {
      var url = api + "/v1/events";
      var base = {rid: data.rid, article_id: id,
                  placement: data.placement || this.getAttribute("placement") || "article_bottom"};
      function event(type, more) { return Object.assign({type: type}, base, more); }
      if (window.IntersectionObserver) {
        var shown = new IntersectionObserver(function (entries) {
          if (entries.some(seen)) {
            shown.disconnect();
            send(url, event("impression", {shown: items.length}));
          }
        }, {threshold: [0, 0.1, 0.2, 0.3, 0.4, 0.5]});
        shown.observe(block);
      }
      block.querySelectorAll(".rs-link").forEach(function (link, i) {
        function clicked(e) {
          // Left or middle button, or the keyboard; a right click opens a menu, it follows no link.
          if (e.button === 0 || e.button === 1) {
            send(url, event("click", {position: i + 1, item_id: String(items[i].id)}));
          }
        }
        if (link.tagName === "A") {
          link.addEventListener("click", clicked);
          link.addEventListener("auxclick", clicked);
        }
      });
    }
  }

  customElements.define("related-stories", RelatedStories);
})();
