from ganlab.cli import entry

entry()
