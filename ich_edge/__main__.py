from ich_edge.cli import console

console()
