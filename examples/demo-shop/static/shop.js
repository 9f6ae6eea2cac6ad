// The demo shop's page script. This is the readable source; the page loads the minified
// bundle `shop.min.js`, with its source map `shop.min.js.map` (both made by ../build-bundle.sh
// and committed). The origins come from the page's `data-*` attributes, filled by the server.
(() => {
  "use strict";

  const api = document.body.dataset.api;
  const partner = document.body.dataset.partner;
  const status = document.getElementById("status");
  const show = (text, key, value) => {
    status.textContent = text;
    status.dataset[key] = value;
  };
  const list = (id, items) => {
    document.getElementById(id).replaceChildren(...items.map((text) => {
      const li = document.createElement("li");
      li.textContent = text;
      return li;
    }));
  };

  // The product list is fetched on `load` (the shop API, another origin: gets traceparent).
  // The async loader has run by then (`load` waits for it), so this call is traced, as a child
  // of the page load; a call made before the loader runs is only seen as a resource timing.
  addEventListener("load", () => {
    fetch(api + "/api/products")
      .then((r) => r.json())
      .then((products) => {
        list("products", products.map((p) => `${p.name} (${p.sku}): ${p.price_cents / 100} €`));
        document.body.dataset.products = "ok";
      });
  });

  // A late promo banner pushes the content down: a layout shift for CLS to show.
  addEventListener("load", () => setTimeout(() => {
    const promo = document.createElement("div");
    promo.className = "promo";
    promo.textContent = "Free shipping this week on orders over 50 €";
    document.getElementById("promo-slot").append(promo);
  }, 300));

  // Updating the cart badge is deliberately slow (a long task): INP has something to show.
  let cartCount = 0;
  function renderCartBadge() {
    const until = performance.now() + 80;
    while (performance.now() < until) { /* busy */ }
    document.getElementById("cart-count").textContent = ++cartCount;
  }

  document.getElementById("add-to-cart").addEventListener("click", () => {
    renderCartBadge();
    fetch(api + "/api/cart", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sku: "SKU-123", qty: 1 }),
    })
      .then((r) => r.json())
      .then((cart) => show(`Added ${cart.sku}: ${cart.total_cents / 100} €`, "cart", "ok"))
      .catch((e) => show(`Cart failed: ${e}`, "cart", "failed"));
  });

  // Checkout: the API answers 503 (its payment provider is down), and the page has a bug.
  function applyDiscountCode(rules) {
    if (!rules) throw new TypeError("Cannot apply discount code: pricing rules are undefined");
  }
  document.getElementById("checkout").addEventListener("click", () => {
    fetch(api + "/api/checkout", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ code: "SPRING25" }),
    }).then((r) => show(r.ok ? "Order placed" : `Checkout failed: HTTP ${r.status}`,
                        "checkout", String(r.status)));
    applyDiscountCode(undefined);
  });

  // A third-party service, not in data-propagate: it must not receive traceparent.
  document.getElementById("reviews").addEventListener("click", () => {
    fetch(partner + "/reviews")
      .then((r) => r.json())
      .then((reviews) => {
        list("reviews-list", reviews.map((r) => `${"★".repeat(r.stars)} ${r.text}`));
        show("Reviews loaded", "reviews", "ok");
      });
  });

  // "Break it": a real bug in a named function, two calls deep, uncaught. In the minified bundle
  // the stack reads `at a (…/static/shop.min.js:1:…)`; the bridge rewrites it with the bundle's
  // source map (`shop.min.js.map`) to `at parseCoupon (shop.js:…)`.
  function parseCoupon(code) {
    const [prefix, percent] = code.split("-");
    if (!percent) throw new TypeError(`Coupon "${code}" has no discount: expected NAME-PERCENT`);
    return { prefix, percent: Number(percent) };
  }
  function applyCoupon(code) {
    const coupon = parseCoupon(code);
    show(`Coupon ${coupon.prefix}: -${coupon.percent} %`, "coupon", "ok");
  }
  document.getElementById("break").addEventListener("click", () => {
    applyCoupon("SPRING");
  });
})();
