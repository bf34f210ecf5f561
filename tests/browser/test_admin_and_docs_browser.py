"""The admin and the API's docs work in a real browser under their Content-Security-Policy:
the ``browser`` fixture fails a test on any CSP violation or script error in the console."""

from __future__ import annotations

from django.contrib.auth.models import User
from selenium.webdriver.common.by import By

from tests.browser.pages import wait_for, wait_for_page

ROOT_PASSWORD = "root-correct-horse-battery"


def admin_log_in(browser, server) -> None:
    User.objects.create_superuser("root", password=ROOT_PASSWORD)
    browser.get(f"{server.base}/admin/")
    wait_for_page(browser, lambda url: "/admin/login/" in url, what="the admin's login page")
    browser.find_element(By.NAME, "username").send_keys("root")
    browser.find_element(By.NAME, "password").send_keys(ROOT_PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    wait_for_page(browser, lambda url: url.rstrip("/").endswith("/admin"), what="the admin's index")


def test_the_admin_logs_in_lists_filters_and_opens_a_change_form_under_its_csp(browser, server):
    admin_log_in(browser, server)
    browser.get(f"{server.base}/admin/auth/user/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#result_list"), what="the user list")
    # The filter sidebar and the actions bar are drawn by the admin's own scripts.
    browser.find_element(By.LINK_TEXT, "Yes").click()
    wait_for_page(browser, lambda url: "is_superuser__exact=1" in url or "is_staff__exact=1" in url, what="a filter")
    browser.get(f"{server.base}/admin/auth/user/{User.objects.get(username='root').pk}/change/")
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#user_form"), what="the change form")
    # The permission picker is built by SelectFilter2.js: it runs only if scripts may run.
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".selector-available"), what="a filter widget")


def test_the_api_docs_render_the_schema_under_their_csp(browser, server):
    browser.get(f"{server.base}/api/docs/")
    title = wait_for(
        browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"), timeout=20, what="Swagger UI"
    )
    assert "Sofiia Console API" in title[0].text
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock"), what="the operations")
