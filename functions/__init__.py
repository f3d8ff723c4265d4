"""The deployed Functions: blueprints (thin handlers) and the plain code they call."""
