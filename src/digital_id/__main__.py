from digital_id.cli import main

main()
