from vfctl.entry import main

main()
