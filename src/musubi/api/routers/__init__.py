"""One router per area; every route declares its permission and scope with ``require()``."""
