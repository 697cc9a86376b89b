"""Models and the integer program they lower to: the library every other package reads (imports none of them)."""
