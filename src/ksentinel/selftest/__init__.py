"""The fault matrix (``ksentinel selftest``): does each part of ksentinel catch the reference
platform's faults it is named for, and does the clean platform raise nothing?

    matrix    the cells, rows and the table (data only)
    parts     contract, load, probe and alert, each giving a verdict against one target
    run       ``run_matrix``: a fresh embedded platform per fault, the parts in order
    command   the ``ksentinel selftest`` click command
"""
