"""The tuning Job's manifest, its outcome and the result its pod reports."""

from __future__ import annotations

import json

import pytest

from adaptrec.operator import jobs
from adaptrec.operator.policy import parse_policy_spec
from tests.operator.conftest import example_policy


def _job(policy, spec, round_number=1):
    return jobs.build_job(policy, spec, round_number)


def test_job_name_is_deterministic_and_short():
    uid = "0f4c2a9e-5b7d-4e21-9c3a-7d1e2f3a4b5c"
    name = jobs.job_name("x" * 80, uid, 12)
    assert name == jobs.job_name("x" * 80, uid, 12)
    assert len(name) <= 63
    assert name.endswith("-r12-0f4c2a9e")
    assert jobs.job_name("p", uid, 1) != jobs.job_name("p", uid, 2)
    assert jobs.job_name("p", uid, 1) != jobs.job_name("p", "1" + uid[1:], 1)


def test_job_is_owned_by_policy(policy, spec):
    job = _job(policy, spec)
    (owner,) = job["metadata"]["ownerReferences"]
    assert owner["kind"] == "HyperparamPolicy"
    assert owner["uid"] == policy["metadata"]["uid"]
    assert owner["controller"] is True
    assert job["metadata"]["namespace"] == "recs"


def test_job_carries_training_settings(policy, spec):
    job = _job(policy, spec)
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == "adaptrec-training"
    assert pod["automountServiceAccountToken"] is False
    assert pod["restartPolicy"] == "Never"
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["image"] == "adaptrec:0.1.0"
    assert "command" not in container
    assert container["args"][0] == "train"
    assert job["spec"]["activeDeadlineSeconds"] == 7200
    assert job["spec"]["backoffLimit"] == 1
    assert "completionMode" not in job["spec"]


def test_job_args_hand_over_space_and_agent(policy, spec):
    args = _job(policy, spec)["spec"]["template"]["spec"]["containers"][0]["args"]
    document = json.loads(args[args.index("--spec-json") + 1])
    assert [h["name"] for h in document["hyperparameters"]] == spec.space.names
    assert document["agent"]["seed"] == 7
    assert args[args.index("--result-file") + 1] == "/dev/termination-log"
    assert args[args.index("--feature-repo") + 1] == "/app/feature_repo"


def test_evictions_do_not_count_against_backoff(policy, spec):
    rules = _job(policy, spec)["spec"]["podFailurePolicy"]["rules"]
    ignore = [rule for rule in rules if rule["action"] == "Ignore"]
    assert ignore == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]}
    ]


def test_several_replicas_run_indexed_torchrun():
    policy = example_policy()
    policy["spec"]["training"]["replicas"] = 3
    spec = parse_policy_spec(policy["spec"], "recs")
    job = jobs.build_job(policy, spec, 2)
    name = job["metadata"]["name"]
    assert job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == 3
    assert job["spec"]["parallelism"] == 3
    pod = job["spec"]["template"]["spec"]
    assert pod["subdomain"] == name
    command = pod["containers"][0]["command"]
    assert command[0] == "torchrun"
    assert "--nnodes=3" in command
    assert "--nproc-per-node=1" in command
    assert f"--master-addr={name}-0.{name}" in command
    assert command[-1] == "adaptrec"
    env = {e["name"]: e for e in pod["containers"][0]["env"]}
    assert "job-completion-index" in str(env["ADAPTREC_NODE_RANK"]["valueFrom"])
    service = jobs.build_rendezvous_service(job)
    assert service["spec"]["clusterIP"] == "None"
    assert service["metadata"]["name"] == name


def test_user_command_and_env_are_kept():
    policy = example_policy()
    policy["spec"]["training"].update(
        command=["python", "-m", "adaptrec.cli"],
        env=[{"name": "OMP_NUM_THREADS", "value": "4"}],
    )
    spec = parse_policy_spec(policy["spec"], "recs")
    container = jobs.build_job(policy, spec, 1)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["command"] == ["python", "-m", "adaptrec.cli"]
    assert {"name": "OMP_NUM_THREADS", "value": "4"} in container["env"]


def test_feast_configmap_is_mounted():
    policy = example_policy()
    policy["spec"]["feast"]["configMapName"] = "feast-redis"
    spec = parse_policy_spec(policy["spec"], "recs")
    pod = jobs.build_job(policy, spec, 1)["spec"]["template"]["spec"]
    assert pod["volumes"][0]["configMap"]["name"] == "feast-redis"
    args = pod["containers"][0]["args"]
    assert args[args.index("--feature-store-yaml") + 1].startswith(
        pod["containers"][0]["volumeMounts"][0]["mountPath"]
    )


@pytest.mark.parametrize(
    ("conditions", "state", "reason"),
    [
        ([], jobs.JobState.RUNNING, ""),
        ([{"type": "Suspended", "status": "True"}], jobs.JobState.RUNNING, ""),
        (
            [{"type": "SuccessCriteriaMet", "status": "True"}],
            jobs.JobState.RUNNING,
            "",
        ),
        (
            [{"type": "Complete", "status": "True", "reason": "CompletionsReached"}],
            jobs.JobState.SUCCEEDED,
            "CompletionsReached",
        ),
        (
            [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}],
            jobs.JobState.FAILED,
            "BackoffLimitExceeded",
        ),
        (
            [{"type": "Failed", "status": "False", "reason": "DeadlineExceeded"}],
            jobs.JobState.RUNNING,
            "",
        ),
    ],
)
def test_outcome_comes_from_conditions(conditions, state, reason):
    outcome = jobs.job_outcome({"status": {"conditions": conditions, "failed": 9}})
    assert outcome.state == state
    assert outcome.reason == reason


def _pod(message, exit_code=0, index=None):
    metadata = {}
    if index is not None:
        metadata["annotations"] = {jobs.COMPLETION_INDEX_ANNOTATION: str(index)}
    return {
        "metadata": metadata,
        "status": {
            "containerStatuses": [
                {
                    "name": "trainer",
                    "state": {
                        "terminated": {"exitCode": exit_code, "message": message}
                    },
                }
            ]
        },
    }


def _result_text(space, **overrides):
    hyperparams = space.initial()
    document = {
        "hyperparams": hyperparams.to_json_dict(),
        "metrics": {"ndcg@10": 0.31, "reward": 0.12},
        "episodes": 40,
    }
    document.update(overrides)
    return json.dumps(document)


def test_valid_result_accepted(spec):
    message = jobs.result_message([_pod(_result_text(spec.space))])
    result = jobs.parse_result(message, spec.space)
    assert result.hyperparams == spec.space.initial()
    assert result.metrics == {"ndcg@10": 0.31, "reward": 0.12}
    assert result.episodes == 40


def test_rank_zero_result_wins(spec):
    other = spec.space.validate({**spec.space.initial().values_dict, "alpha": 0.9})
    pods = [
        _pod(json.dumps({"hyperparams": other.to_json_dict()}), index=1),
        _pod(_result_text(spec.space), index=0),
    ]
    result = jobs.parse_result(jobs.result_message(pods), spec.space)
    assert result.hyperparams == spec.space.initial()


def test_failed_pod_message_ignored(spec):
    assert jobs.result_message([_pod(_result_text(spec.space), exit_code=1)]) is None


@pytest.mark.parametrize(
    ("message", "match"),
    [
        (None, "without a result"),
        ("", "without a result"),
        ("Traceback (most recent call last):", "not JSON"),
        ('{"metrics": {}}', "must be"),
        ("x" * 5000, "limit"),
    ],
)
def test_bad_result_rejected(spec, message, match):
    with pytest.raises(jobs.ResultError, match=match):
        jobs.parse_result(message, spec.space)


def test_result_outside_bounds_rejected(spec):
    values = {**spec.space.initial().values_dict, "alpha": 1.5}
    message = json.dumps({"hyperparams": {"values": values}})
    with pytest.raises(jobs.ResultError, match="alpha"):
        jobs.parse_result(message, spec.space)


def test_result_with_wrong_version_rejected(spec):
    document = spec.space.initial().to_json_dict()
    document["version"] = "000000000000"
    with pytest.raises(jobs.ResultError, match="version"):
        jobs.parse_result(json.dumps({"hyperparams": document}), spec.space)


def test_result_with_negative_episodes_rejected(spec):
    with pytest.raises(jobs.ResultError, match="episodes"):
        jobs.parse_result(_result_text(spec.space, episodes=-1), spec.space)
