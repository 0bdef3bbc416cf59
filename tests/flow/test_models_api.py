"""Saved models through the REST API and the admin: the permission matrix, validation errors
naming the field, training with versions and metrics, and rolling back."""

from __future__ import annotations

import pytest

from apps.ml.models import ModelCheck, ModelVersion, SavedModel
from tests.flow.test_models import churn  # noqa: F401 (a fixture)
from tests.flow.test_quality_api import READ, ROLES, WRITE, admin_errors, errors_of, expected
from tests.runs.admin_forms import action, messages_of

MODELS = "/api/v1/projects/SALES/models/"
CHURN = {"name": "churn2", "dataset": "customers", "target": "churned",
         "task": "classification", "algorithm": "logistic_regression", "params": {}}  # fmt: skip


@pytest.mark.parametrize("role", ROLES)
def test_models_matrix(cast, api, churn, role):
    client = api(cast[role])
    assert client.get(MODELS).status_code == expected(READ, role, 200)
    assert client.get(f"{MODELS}{churn.pk}/").status_code == expected(READ, role, 200)
    assert client.post(MODELS, CHURN).status_code == expected(WRITE, role, 201)
    patched = client.patch(f"{MODELS}{churn.pk}/", {"params": {"n_estimators": 10}})
    assert patched.status_code == expected(WRITE, role, 200)
    trained = client.post(f"{MODELS}{churn.pk}/train/")
    assert trained.status_code == expected(WRITE, role, 200)
    assert ModelVersion.objects.exists() == (trained.status_code == 200)
    deleted = client.delete(f"{MODELS}{churn.pk}/")
    assert deleted.status_code == expected(WRITE, role, 204)
    assert SavedModel.objects.filter(pk=churn.pk).exists() == (deleted.status_code != 204)


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"algorithm": "svm"}, "algorithm", "Unknown algorithm 'svm' for classification"),
        ({"task": "regression"}, "algorithm", "Unknown algorithm 'logistic_regression'"),
        ({"params": {"n_trees": 3}}, "params", "Unknown parameter(s) n_trees"),
        ({"params": {"C": -1}}, "params", "The 'C' parameter of LogisticRegression must be"),
        ({"params": [1]}, "params", "A JSON object"),
        ({"target": "churn"}, "target", "No column 'churn' in customers (columns: tenure,"),
        ({"name": "churn"}, "name", "already has a model named 'churn'"),
        ({"name": "no spaces"}, "name", "Use letters, digits and underscores"),
        ({"dataset": "nowhere"}, "dataset", "No dataset 'nowhere' here."),
        ({"task": "clustering"}, "task", "is not a valid choice"),
    ],
)
def test_model_errors_name_the_field(cast, api, churn, change, field, message):
    errors = errors_of(api(cast["editor"]).post(MODELS, {**CHURN, **change}))
    assert message in errors[field][0], errors


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_train_through_the_api(cast, api, churn):
    editor = api(cast["editor"])
    trained = editor.post(f"{MODELS}{churn.pk}/train/")
    assert trained.status_code == 200, trained.content
    version = trained.json()
    assert version["number"] == 1 and set(version["metrics"]) == {"accuracy", "f1", "auc"}
    assert version["train_rows"] == 240 and version["test_rows"] == 60
    assert editor.post(f"{MODELS}{churn.pk}/train/").json()["number"] == 2

    ModelCheck.objects.create(model=churn, name="good", metric="auc", hard_min=0.7)
    detail = editor.get(f"{MODELS}{churn.pk}/").json()
    assert detail["active_version"] == 2
    assert [v["number"] for v in detail["versions"]] == [2, 1]
    assert [c["name"] for c in detail["checks"]] == ["good"]
    assert "versions" not in editor.get(MODELS).json()["results"][0]

    rolled = editor.patch(f"{MODELS}{churn.pk}/", {"active_version": 1})
    assert rolled.status_code == 200 and rolled.json()["active_version"] == 1
    missing = editor.patch(f"{MODELS}{churn.pk}/", {"active_version": 7})
    assert "The model has no version 7." in errors_of(missing)["active_version"][0]
    assert SavedModel.objects.get(pk=churn.pk).active_version.number == 1


def test_a_failed_training_says_why(cast, api, churn):
    SavedModel.objects.filter(pk=churn.pk).update(target="plan_type")  # slipped past validation
    failed = api(cast["editor"]).post(f"{MODELS}{churn.pk}/train/")
    assert "unknown target column 'plan_type'" in errors_of(failed)["detail"]
    assert not ModelVersion.objects.exists()


# --- the admin ---------------------------------------------------------------------------------


@pytest.fixture
def admin_as(client, cast):
    def login(role):
        client.force_login(cast[role])
        return client

    return login


def model_form(churn, **fields) -> dict:
    form = {"project": churn.project_id, "name": "churn2", "dataset": churn.dataset_id,
            "target": "churned", "task": "classification", "algorithm": "random_forest",
            "params": "{}", "checks-TOTAL_FORMS": 0, "checks-INITIAL_FORMS": 0,
            "checks-MIN_NUM_FORMS": 0, "checks-MAX_NUM_FORMS": 1000}  # fmt: skip
    return form | fields


def test_admin_model_form_names_the_field(admin_as, churn):
    editor = admin_as("editor")
    errors = admin_errors(editor.post("/admin/ml/savedmodel/add/", model_form(churn, target="x")))
    assert "No column 'x' in customers" in errors["target"][0]
    bad = model_form(churn, algorithm="random_forest", params='{"max_depth": "deep"}')
    errors = admin_errors(editor.post("/admin/ml/savedmodel/add/", bad))
    assert "The 'max_depth' parameter of RandomForestClassifier" in errors["params"][0]
    check = {"checks-TOTAL_FORMS": 1, "checks-0-name": "fit", "checks-0-metric": "r2",
             "checks-0-hard_min": "0.5"}  # fmt: skip
    response = editor.post("/admin/ml/savedmodel/add/", model_form(churn, **check))
    formset = response.context["inline_admin_formsets"][0].formset
    assert "A classification model is scored by accuracy" in formset.forms[0].errors["metric"][0]
    assert SavedModel.objects.count() == 1


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(120)
def test_admin_train_now(admin_as, churn):
    said = messages_of(action(admin_as("editor"), "/admin/ml/savedmodel/", "train_now", churn))
    assert said[0].startswith("churn: trained v1 (accuracy = ")
    page = admin_as("reader").get(f"/admin/ml/savedmodel/{churn.pk}/change/")
    assert page.status_code == 200 and "Latest versions" in page.content.decode()


def test_admin_pages_render(admin_as, churn):
    ModelCheck.objects.create(model=churn, name="good", metric="auc", hard_min=0.7)
    for role in ("editor", "reader"):
        client = admin_as(role)
        assert client.get("/admin/ml/savedmodel/").status_code == 200
        assert client.get(f"/admin/ml/savedmodel/{churn.pk}/change/").status_code == 200
        add = client.get("/admin/ml/savedmodel/add/")
        assert add.status_code == (200 if role == "editor" else 403)
    assert admin_as("outsider").get(f"/admin/ml/savedmodel/{churn.pk}/change/").status_code == 404
