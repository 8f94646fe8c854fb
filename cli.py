from textgan.cli import main

main()
