//! `serve`-style subsets of domains: only the chosen ones listen, each reports health and
//! serves reflection.

use phoenix_common::domain::Domain;
use phoenix_tests::TestApp;
use phoenix_tests::app::health_status;
use tonic_health::ServingStatus;

#[tokio::test]
async fn a_subset_of_services_serves_health_for_exactly_those_domains() {
    let app = TestApp::spawn(&[Domain::Auth, Domain::Iot]).await;
    for domain in [Domain::Auth, Domain::Iot] {
        let status = health_status(app.addr(domain), domain.grpc_service()).await.expect("health");
        assert_eq!(status, ServingStatus::Serving as i32, "{domain}");
    }
    // The auth server does not claim to serve iot.
    let err = health_status(app.addr(Domain::Auth), Domain::Iot.grpc_service()).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);
    app.stop().await;
}

#[tokio::test]
async fn reflection_lists_the_domain_service() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let app = TestApp::spawn(&[Domain::Users]).await;
    let mut client = ServerReflectionClient::new(app.channel(Domain::Users).await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream =
        client.server_reflection_info(tokio_stream::iter(vec![request])).await.expect("reflection call").into_inner();
    let reply = stream.message().await.expect("reply").expect("one message");
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("expected a service list, got {:?}", reply.message_response);
    };
    let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&Domain::Users.grpc_service().to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
    app.stop().await;
}
