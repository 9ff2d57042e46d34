//! Walks every route of the router (built only from the route table) and checks that an
//! anonymous request and a request from each role without the permission are refused.

use kapstone_domain::permissions::{Action, roles_allowed};
use kapstone_testkit::{TestApp, both_backends};
use kapstone_web::routes;

fn concrete(path: &str) -> String {
    let id = "01a21565-0000-7000-8000-000000000000";
    path.replace("{id}", id).replace("{consent}", id).replace("{token}", &"0".repeat(64))
}

both_backends! {
    async fn every_route_refuses_anonymous_and_unpermitted_roles(b) {
        let app = TestApp::demo(b).await?;
        let tokens = app.tokens_by_role().await?;
        let table = routes::table();
        assert!(table.len() >= 30, "the table lists every route");
        let mut checked = 0;
        for route in &table {
            if route.action == Action::Public {
                continue;
            }
            let url = app.url(&concrete(route.path));
            let anon = app.client().request(route.method.clone(), &url).send().await?;
            let status = anon.status().as_u16();
            let location = anon.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            assert!(
                status == 401 || (status == 303 && location == "/login"),
                "anonymous {} {} got {status} {location}",
                route.method,
                route.path
            );
            checked += 1;
            let allowed = roles_allowed(route.action);
            for (role, token) in &tokens {
                if allowed.contains(role) {
                    continue;
                }
                let resp = app.client().request(route.method.clone(), &url).bearer_auth(token).send().await?;
                assert_eq!(resp.status(), 403, "{role:?} on {} {}", route.method, route.path);
                let body = resp.text().await?;
                assert!(!body.contains("K0000"), "a refusal carries no record data");
                checked += 1;
            }
        }
        assert!(checked > 60, "checked {checked} refusals");
        app.stop().await
    }
}

#[test]
fn routes_are_unique_by_method_and_path() {
    let table = routes::table();
    let mut seen = std::collections::HashSet::new();
    for r in &table {
        assert!(seen.insert((r.method.clone(), r.path)), "duplicate route {} {}", r.method, r.path);
    }
}
