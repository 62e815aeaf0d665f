from supsup_cli.cli.app import main

main()
