// Starts Swagger UI (/docs) or ReDoc (/redoc) on the page app/web/api_docs.py serves. It lives in a
// file because the Content-Security-Policy allows no inline script, which is how FastAPI's own pages do it.
(() => {
  "use strict";
  const el = document.getElementById("api-docs");
  if (!el) return;
  const url = el.dataset.openapi;
  if (el.dataset.viewer === "redoc") {
    window.Redoc.init(url, {}, el);
    return;
  }
  const bundle = window.SwaggerUIBundle;
  // FastAPI's defaults, then the app's swagger_ui_parameters; validatorUrl null: Swagger UI would
  // otherwise send the schema to validator.swagger.io for its badge.
  bundle({
    url, dom_id: "#api-docs", layout: "BaseLayout", deepLinking: true, showExtensions: true,
    showCommonExtensions: true, validatorUrl: null,
    presets: [bundle.presets.apis, bundle.SwaggerUIStandalonePreset],
    ...JSON.parse(el.dataset.parameters || "{}"),
  });
})();
