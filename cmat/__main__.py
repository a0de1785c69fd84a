from cmat.cli import main

main()
