import time
import pytest
from apps.accounts.models import ApiToken
from apps.accounts.services import token_authenticate, token_create
from apps.projects import permissions
from apps.projects.models import Project
from apps.runs.api import LIST_FIELDS
from apps.runs.models import Run

pytestmark = pytest.mark.django_db

def t(label, fn, n=500):
    fn()
    c0 = time.process_time()
    for _ in range(n):
        fn()
    print(f"\n{label}: {1000*(time.process_time()-c0)/n:.3f} ms")

def test_parts(make_scenario, cast):
    scenario = make_scenario()
    Run.objects.bulk_create(Run(scenario=scenario, project=scenario.project, number=n, status="success") for n in range(1, 80))
    _, key = token_create(user=cast["reader"], name="p")
    h = ApiToken.hash_key(key)
    t("token_authenticate", lambda: token_authenticate(key))
    t("token get() no is_active join", lambda: ApiToken.objects.select_related("user", "user__cadenza_profile").get(key_hash=h))
    t("token sql only", lambda: str(ApiToken.objects.select_related("user", "user__cadenza_profile").filter(key_hash=h, user__is_active=True).order_by("-created_at")[:1].query))
    user = token_authenticate(key).user
    t("visible_project", lambda: permissions.visible_project(user, key="SALES"))
    t("visible_project sql only", lambda: str(permissions.for_user(Project.objects.all(), user, "view").filter(key="SALES").query))
    p = permissions.visible_project(user, key="SALES")
    t("runs page", lambda: list(permissions.in_project(Run.objects.all(), user, p).values(*LIST_FIELDS).order_by("-id")[:51]))
    t("runs page sql only", lambda: str(permissions.in_project(Run.objects.all(), user, p).values(*LIST_FIELDS).order_by("-id")[:51].query))
    t("select 1", lambda: Project.objects.raw("select 1 as id")[0])
