"""What every page and API router shares: rendering, formatting, ids, chart specs, the API's plumbing."""
