from fbp.cli import main

raise SystemExit(main())
