// Readiness probe used by kafka.sh: exits 0 once the broker at BOOTSTRAP
// answers a real metadata request (describeCluster with a known controller,
// plus listTopics), 1 if it does not within TIMEOUT_MS.
// Run in source-file mode against the resolved jars:
//   java -cp "$LIB/*" deploy/kafka/KafkaReady.java 127.0.0.1:9092 60000
import java.util.Properties;
import java.util.concurrent.TimeUnit;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.common.Node;

public class KafkaReady {
    public static void main(String[] args) throws Exception {
        String bootstrap = args.length > 0 ? args[0] : "127.0.0.1:9092";
        long timeoutMs = args.length > 1 ? Long.parseLong(args[1]) : 60_000L;
        long deadline = System.currentTimeMillis() + timeoutMs;

        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "5000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "5000");
        p.put(AdminClientConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, "1000");
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, "kafka-sh-ready-probe");

        String last = "no attempt";
        try (Admin admin = Admin.create(p)) {
            while (System.currentTimeMillis() < deadline) {
                try {
                    DescribeClusterResult r = admin.describeCluster();
                    String clusterId = r.clusterId().get(5, TimeUnit.SECONDS);
                    int brokers = r.nodes().get(5, TimeUnit.SECONDS).size();
                    Node controller = r.controller().get(5, TimeUnit.SECONDS);
                    admin.listTopics().names().get(5, TimeUnit.SECONDS);
                    if (brokers > 0 && controller != null && !controller.isEmpty()) {
                        System.out.println("kafka ready: cluster " + clusterId + ", "
                                + brokers + " broker(s), controller node " + controller.id());
                        return;
                    }
                    last = "cluster has no brokers/controller yet";
                } catch (Exception e) {
                    last = e.toString();
                }
                Thread.sleep(500);
            }
        }
        System.err.println("kafka not ready after " + timeoutMs + " ms: " + last);
        System.exit(1);
    }
}
