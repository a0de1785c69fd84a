from cmat.entry import main

main()
