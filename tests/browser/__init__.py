"""Browser tests: the Prefect dashboard as a person sees it, in headless Chromium."""
