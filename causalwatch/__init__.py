"""causalwatch's SDK: monitor your own training loop (``cw.init / log / finish``)."""
