"""Ray clusters as compute targets: the connection a target record names (``connection``), the
backend that runs each run as a Ray job (``backend``), the supervisor that job starts on a node
(``node``) and the clusters trainyard starts and stops itself (``cluster``)."""
