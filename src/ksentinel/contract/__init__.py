"""The contract suite's engine side: profiles, results collection and the ``ksentinel contract`` runner."""
