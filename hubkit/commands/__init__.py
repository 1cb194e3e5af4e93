"""One module per `hubkit` sub-command; each is a thin call of a library function."""
