from vfctl.cli import main

main()
