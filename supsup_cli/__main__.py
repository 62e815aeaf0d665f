from supsup_cli.cli import main

main()
