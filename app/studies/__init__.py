"""Studies: many runs over seeds and grids, their REST API, pages, form, charts and statistics views."""
