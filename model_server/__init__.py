"""The KServe model server for the hybrid recommender (``adaptrec serve``).

It loads the artefacts that ``HybridRecommender.save`` writes, serves top-K
recommendations over the KServe v1 and v2 protocols with the hyperparameter sets
named in a rollout file, accepts click feedback, and exposes Prometheus metrics
per hyperparameter version on ``/metrics``.
"""
