// sluice from Java 11+: the partner's .p12 as a keystore, the REST API with HttpClient, and the live stream with
// java.net.http.WebSocket.
//   java -Dp12.pass="$(cat certs/clients/demo.p12.pass)" examples/java/PartnerExample.java
import java.io.FileInputStream;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.http.WebSocket;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

public class PartnerExample {
  public static void main(String[] args) throws Exception {
    char[] pass = System.getProperty("p12.pass").toCharArray();
    KeyStore keys = KeyStore.getInstance("PKCS12");
    try (FileInputStream in = new FileInputStream("certs/clients/demo.p12")) { keys.load(in, pass); }
    KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
    kmf.init(keys, pass);
    KeyStore trust = KeyStore.getInstance(KeyStore.getDefaultType());
    trust.load(null, null);
    try (FileInputStream in = new FileInputStream("certs/ca.crt")) {
      trust.setCertificateEntry("sluice-ca", CertificateFactory.getInstance("X.509").generateCertificate(in));
    }
    TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
    tmf.init(trust);
    SSLContext tls = SSLContext.getInstance("TLS");
    tls.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);
    HttpClient http = HttpClient.newBuilder().sslContext(tls).build();

    HttpResponse<String> rows = http.send(
        HttpRequest.newBuilder(URI.create("https://localhost:8443/cityxchange/rows?slu_id=1&cnt=1")).build(),
        HttpResponse.BodyHandlers.ofString());
    System.out.println(rows.statusCode() + " " + rows.body());

    CountDownLatch got = new CountDownLatch(2);
    StringBuilder partial = new StringBuilder();
    WebSocket ws = http.newWebSocketBuilder().buildAsync(
        URI.create("wss://localhost:8443/cityxchange/stream?slu_id=1,2"),
        new WebSocket.Listener() {
          @Override
          public CompletionStage<?> onText(WebSocket w, CharSequence data, boolean last) {
            partial.append(data);
            if (last) {
              String frame = partial.toString();
              partial.setLength(0);
              System.out.println(frame.length() > 220 ? frame.substring(0, 220) + "..." : frame);
              got.countDown();
            }
            w.request(1);
            return CompletableFuture.completedFuture(null);
          }
        }).join();
    got.await(20, TimeUnit.SECONDS);
    ws.sendClose(WebSocket.NORMAL_CLOSURE, "bye").join();
  }
}
