from ray_pipeline.cli import main

raise SystemExit(main())
