from django.contrib.auth import views as auth_views
from django.urls import path

from apps.accounts.views import license_page
from apps.projects.views import project_list

urlpatterns = [
    path("", project_list, name="home"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("license/", license_page, name="license-page"),
]
