"""The Ray executor: the server trains queued runs as Ray tasks on a cluster instead of its own worker slots.

``executor`` claims runs and starts one ``run`` supervisor per run (``pack`` for a pack of runs), both
reaching the executor through ``cluster``; ``task`` is the code that runs on a Ray node (the only module
here that imports torch, inside the task); ``files`` moves a run's files between node and server;
``records`` settles runs a previous server left on the cluster. ``names`` and
``capacity`` import neither Ray nor torch: the pages use them to say where runs train and what the
cluster has free. Nothing in the web process imports Ray unless ``kd serve --executor ray`` chose it.
"""
