"""The conversation core and one module per capability. Never imports telegram."""
