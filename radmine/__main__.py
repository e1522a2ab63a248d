from radmine.cli import main

raise SystemExit(main())
